"""Audio codecs and vocoders shared by several systems."""
