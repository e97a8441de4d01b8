"""Retrieval with the access filter inside the query, prompting, the LLM client, citations."""
