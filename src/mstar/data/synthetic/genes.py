"""Gene modules of the synthetic RNA-seq table (real HGNC symbols; values are synthetic).

Modules tie expression to the latent truth: one module per cancer type, a TP53-pathway module (down
when the marker is mutant), a proliferation module (up with risk), and background genes with noise.
"""

TYPE_MODULES = {
    "BRCA": ["ESR1", "GATA3", "FOXA1", "XBP1", "TFF1", "TFF3", "KRT8", "KRT18", "KRT19", "AGR2", "SPDEF",
             "MUC1", "ERBB2", "PGR", "AR", "SCGB2A2", "MGP", "CA12", "SLC39A6", "ANKRD30A"],
    "LUSC": ["KRT5", "KRT6A", "KRT14", "KRT17", "TP63", "SOX2", "DSG3", "DSC3", "SPRR1A", "SPRR1B", "S100A2",
             "PKP1", "CLCA2", "SERPINB5", "KRT13", "KRT16", "FAT2", "CALML3", "GJB5", "PTHLH"],
    "KIRC": ["CA9", "PAX8", "PAX2", "NDUFA4L2", "ANGPTL4", "VIM", "CP", "HIF1A", "VEGFA", "EGLN3", "SLC2A1",
             "CUBN", "LRP2", "MME", "CDH16", "HAVCR1", "KCNJ16", "PLIN2", "APOC1", "C1QL1"],
}
TP53_MODULE = ["CDKN1A", "MDM2", "BAX", "FAS", "GADD45A", "SESN1", "SESN2", "RRM2B", "TP53I3", "ZMAT3",
               "TNFRSF10B", "BBC3", "PMAIP1", "DDB2", "XPC", "TIGAR", "SPATA18", "EDA2R", "AEN", "FDXR"]
PROLIFERATION_MODULE = ["MKI67", "TOP2A", "CCNB1", "CCNB2", "BIRC5", "CDK1", "AURKA", "AURKB", "BUB1", "PLK1",
                        "CENPF", "TPX2", "UBE2C", "MYBL2", "FOXM1", "CDC20", "KIF2C", "PTTG1", "CCNE1",
                        "E2F1"]
BACKGROUND = [
    "ACTB", "GAPDH", "B2M", "PPIA", "RPLP0", "TBP", "HPRT1", "GUSB", "PGK1", "YWHAZ", "SDHA", "TFRC", "UBC",
    "HMBS", "POLR2A", "ALAS1", "EEF1A1", "RPL13A", "RPS18", "TUBB", "COL1A1", "COL1A2", "COL3A1", "FN1",
    "SPARC", "DCN", "LUM", "POSTN", "ACTA2", "TAGLN", "MYH11", "DES", "PECAM1", "CDH5", "VWF", "ENG",
    "PTPRC", "CD3E", "CD4", "CD8A", "CD19", "MS4A1", "CD68", "CD163", "LYZ", "CSF1R", "ITGAM", "FCGR3A",
    "NKG7", "GZMB", "PRF1", "IFNG", "CXCL9", "CXCL10", "CXCL13", "CCL5", "IL7R", "FOXP3", "CTLA4", "PDCD1",
    "CD274", "LAG3", "HAVCR2", "TIGIT", "IDO1", "STAT1", "IRF1", "JAK1", "JAK2", "SOCS3", "EGFR", "KRAS",
    "NRAS", "BRAF", "PIK3CA", "PTEN", "AKT1", "MTOR", "MAPK1", "MAPK3", "MYC", "CCND1", "CDK4", "CDK6",
    "RB1", "CDKN2A", "CDKN1B", "ATM", "ATR", "CHEK1", "CHEK2", "BRCA1", "BRCA2", "PALB2", "RAD51", "MLH1",
    "MSH2", "MSH6", "PMS2", "SMAD4", "TGFB1", "TGFBR2", "NOTCH1", "NOTCH3", "JAG1", "HES1", "WNT5A",
    "CTNNB1", "APC", "AXIN2", "LGR5", "CDH1", "CDH2", "SNAI1", "SNAI2", "TWIST1", "ZEB1", "ZEB2", "MMP2",
    "MMP9", "TIMP1", "SERPINE1", "PLAU", "PLAUR", "HGF", "MET", "FGFR1", "FGFR2", "FGFR3", "PDGFRA",
    "PDGFRB", "KIT", "FLT1", "KDR", "ANGPT1", "ANGPT2", "TEK", "NOS3", "HMOX1", "NQO1", "GPX4", "SOD2",
    "CAT", "TXN", "PRDX1", "LDHA", "PKM", "HK2", "ENO1", "ALDOA", "TPI1", "PFKP", "G6PD", "IDH1", "IDH2",
    "FH", "SDHB", "ACLY", "FASN", "SCD", "HMGCR", "LDLR", "ABCB1", "ABCG2", "CYP3A4", "UGT1A1", "GSTP1",
    "NFE2L2", "KEAP1", "HSPA1A", "HSP90AA1", "DNAJB1", "XBP1S", "ATF4", "DDIT3", "EIF2AK3", "ERN1",
    "ATF6", "BCL2", "BCL2L1", "MCL1", "BAK1", "CASP3", "CASP8", "CASP9", "APAF1", "CYCS", "XIAP",
    "BIRC2", "TNF", "IL1B", "IL6", "CXCL8", "NFKB1", "RELA", "IKBKB", "TLR4", "MYD88", "S100A8", "S100A9",
    "LCN2", "SAA1", "CRP", "ALB", "TTR", "APOA1", "APOB", "FABP4", "ADIPOQ", "LEP", "PPARG", "CEBPA",
    "KLF4", "POU5F1", "NANOG", "SOX9", "PROM1", "CD44", "ALDH1A1", "EPCAM", "THY1", "NES",
]
