"""Where prompts come from: the embedded local registry, or PromptLayer's."""
