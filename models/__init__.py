"""Pure-PyTorch model code. Nothing under this package imports ComfyUI."""
