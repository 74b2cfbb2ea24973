"""Models: the catalogue of local GGUFs, where each runs (placement) and its one lifecycle."""
