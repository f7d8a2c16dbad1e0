/*
 * ed_clock: the monotonic clock every timing in edistill reads (durations, deadlines, rates, the
 * compute time a teacher reports). Never the wall clock: it does not jump when the time is set.
 */
#ifndef ED_CLOCK_H
#define ED_CLOCK_H

#include <stdint.h>

/* Seconds on a monotonic clock (CLOCK_MONOTONIC); only differences are meaningful. */
double ed_now(void);

/* The same clock in whole microseconds. */
uint64_t ed_now_us(void);

#endif
