"""EMV kernel: TLV, selection, GPO, records, ODA, restrictions, CVM, risk, action analysis."""
