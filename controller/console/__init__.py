"""The prosthetists' serial console: commands, the session on a port, line editing, access, the audit log, calibration."""
