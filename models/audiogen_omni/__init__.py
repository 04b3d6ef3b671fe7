"""audiogen_omni model code (pure PyTorch)."""
