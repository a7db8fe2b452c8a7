"""The published methods bitsim simulates, one module each, built from the layers below."""
