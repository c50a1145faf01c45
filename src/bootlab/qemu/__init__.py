"""bootlab.qemu."""
