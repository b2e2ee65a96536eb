"""Proof from the client's side (DESIGN.md §14): a recorder that keeps every operation as the
client saw it (invoke, then ok / fail / unknown), and a checker that holds the platform's final
state to that history."""
