/*
 * ed_proc: facts about this process that several reports need (metrics records, /metrics).
 */
#ifndef ED_PROC_H
#define ED_PROC_H

/* Peak resident set size of this process in bytes (getrusage ru_maxrss); 0 if unknown. */
double ed_proc_peak_rss_bytes(void);

#endif
