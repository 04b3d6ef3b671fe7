"""Ovi (twin-DiT audio+video generation): fusion model, loader, text encoder, sampler."""
