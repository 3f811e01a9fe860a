"""The FHIRcast event catalog and the validation of event notifications."""
