"""`make bench`: how long each step a user waits for takes, beside Pulumi's own floor."""
