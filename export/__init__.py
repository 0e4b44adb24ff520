"""heatq_export: emitters that turn an IntGraph into target source files, and `heatq-export`."""
