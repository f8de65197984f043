"""An example third-party connector for jarvice-dssr."""
