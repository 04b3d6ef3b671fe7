"""mtv model code (pure PyTorch)."""
