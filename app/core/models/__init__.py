"""Models: the catalogue of local GGUFs, how each is launched, and its speed statistics."""
