"""Check my models: each model and FamilyLog's pair through the app's API, as a pass/fail table."""
