"""jobtask's core: domain types, services, permission rules and the message bus."""
