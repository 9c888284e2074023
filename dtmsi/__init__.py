"""dtmsi: a compiler for PCI/MSI topology descriptions (.msi) into device trees and MSI stubs."""

__version__ = "0.1.0"
