"""The services that answer operations: faces, collections, users, video jobs; and what they share."""
