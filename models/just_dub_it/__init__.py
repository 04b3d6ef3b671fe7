"""just_dub_it model code (pure PyTorch)."""
