"""Design-time tools over definitions, run before anything runs: `waypost check` finds
what would go wrong, `waypost graph` draws the definition as Mermaid."""
