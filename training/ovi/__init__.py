"""Ovi training: flow matching of the twin DiTs on cached (video latent, audio latent, text features)."""
