"""Training loops of the world model and the policy, free of Ray (the trainer actors wrap them)."""
