//! `blindspot survey`: the catalogue of architectures measured with the audit machinery.
