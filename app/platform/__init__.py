"""What differs per OS, one small class per OS behind one interface; imports nothing from app.core."""
