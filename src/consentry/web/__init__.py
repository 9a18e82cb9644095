"""The frontend's side: consent.js, its banner and preference center, and the /privacy page."""
