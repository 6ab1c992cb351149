"""The user's model as the plugin reads it: loading (safe mode), its input (size, range,
preprocessing), and its class names."""
