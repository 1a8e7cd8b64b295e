"""quanta.model — quantize neural-network weights, run them on the CPU, and measure the cost."""
