"""What users touch: the magics, the widget form, the command line, prompt authoring."""
