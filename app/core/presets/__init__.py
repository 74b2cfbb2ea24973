"""Per-model settings: llama.cpp's preset INI (``models.ini``), one section per catalogue key."""
