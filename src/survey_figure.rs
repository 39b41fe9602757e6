//! The survey figure (survey.png).
