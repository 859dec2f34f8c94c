"""Audio I/O, resampling, slicing and denoising."""
