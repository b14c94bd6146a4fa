/*
 * The connection log line, written when a connection closes.
 */
#ifndef LBD_CONNLOG_H
#define LBD_CONNLOG_H

#include "workerstate.h"

void connlog_write(const struct worker *w, const struct conn *c);

#endif
