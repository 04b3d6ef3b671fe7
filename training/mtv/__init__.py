"""MTV training: v-prediction of the CogVideoX denoiser with the MST-ControlNet on cached latents and features."""
