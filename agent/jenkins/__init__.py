"""Step 2 of the flow, the Jenkins side: its requests (one endpoint table), what they answer,
and the plain data types the rest of the agent reads."""
