"""Arena library."""
