"""Sign-up and the charge pages: start a charge, the live session, its receipt (URL namespace `driver`)."""
