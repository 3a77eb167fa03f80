"""EMV kernel: TLV, selection, GPO, records, ODA, restrictions, CVM, risk management, action analysis."""
