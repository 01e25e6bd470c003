"""What the surfaces draw: the live cell view, the footer, Markdown rendered safely."""
