"""quanta: quantize audio, images and neural networks, and measure what each choice costs."""

__version__ = "0.1.0"
