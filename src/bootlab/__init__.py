"""bootlab: boot OS images in QEMU, observe the console, and measure how often they boot."""

__version__ = "0.1.0"
