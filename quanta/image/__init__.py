"""quanta.image — a JPEG encoder whose quantization is ours, posterization, and image metrics."""
