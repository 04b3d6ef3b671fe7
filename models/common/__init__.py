"""Building blocks shared by the systems: attention, RoPE, modulation, samplers, checkpoints, codecs."""
