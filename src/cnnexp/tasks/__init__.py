"""The LightningModules, one per task; which task does what is the catalogue's
(`cnnexp.core.catalogue`)."""
