"""trl_accel: transformer actors trained online, accelerated by a simple agent (TorchRL-native)."""
__version__ = "0.1.0"
