/*
 * libFuzzer target: ctl_parse() (src/ctlproto.c) on arbitrary request lines.
 * The first input byte picks the size of the error buffer (0..255, so
 * truncation is exercised); the rest, cut at its first NUL, is the line.
 * Both buffers are heap blocks of exactly their size, so AddressSanitizer
 * sees any byte read or written past them.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbd/control.h"

#define FUZZ_LINE_MAX	4096	/* well past LBD_CTL_LINE_MAX: the parser must not care */
#define FUZZ_POISON	0x5a

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
takes_target(enum lbd_ctl_command command)
{
	return command == LBD_CTL_DRAIN || command == LBD_CTL_DISABLE ||
	    command == LBD_CTL_ENABLE || command == LBD_CTL_WEIGHT;
}

static const char *
command_name(enum lbd_ctl_command command)
{
	switch (command) {
	case LBD_CTL_DRAIN:
		return "drain";
	case LBD_CTL_DISABLE:
		return "disable";
	case LBD_CTL_ENABLE:
		return "enable";
	case LBD_CTL_WEIGHT:
		return "weight";
	case LBD_CTL_SHOW:
		return "show";
	case LBD_CTL_RELOAD:
		return "reload";
	}
	abort();
}

/* What a successful parse promises, per include/lbd/control.h. */
static void
check_request(const struct lbd_ctl_request *req)
{
	assert(memchr(req->service, '\0', sizeof(req->service)) != NULL);
	assert(memchr(req->backend, '\0', sizeof(req->backend)) != NULL);
	if (takes_target(req->command)) {
		assert(ctl_name_valid(req->service));
		assert(ctl_name_valid(req->backend));
	} else if (req->command == LBD_CTL_SHOW) {
		assert(req->service[0] == '\0' || ctl_name_valid(req->service));
		assert(req->backend[0] == '\0' || ctl_name_valid(req->backend));
		assert(req->backend[0] == '\0' || req->service[0] != '\0');
	} else {
		assert(req->command == LBD_CTL_RELOAD);
		assert(req->service[0] == '\0' && req->backend[0] == '\0');
	}
	assert(req->weight <= LBD_CTL_MAX_WEIGHT);
	assert(req->command == LBD_CTL_WEIGHT || req->weight == 0);
}

/* The request written back in canonical form parses to the same request. */
static void
check_canonical(const struct lbd_ctl_request *req)
{
	struct lbd_ctl_request again;
	char line[LBD_CTL_LINE_MAX], err[128];

	if (req->command == LBD_CTL_WEIGHT)
		snprintf(line, sizeof(line), "weight %s/%s %u", req->service,
		    req->backend, (unsigned)req->weight);
	else if (req->backend[0] != '\0')
		snprintf(line, sizeof(line), "%s %s/%s", command_name(req->command),
		    req->service, req->backend);
	else
		snprintf(line, sizeof(line), "%s %s", command_name(req->command),
		    req->service);
	assert(ctl_parse(line, &again, err, sizeof(err)) == 0);
	assert(again.command == req->command && again.weight == req->weight);
	assert(strcmp(again.service, req->service) == 0);
	assert(strcmp(again.backend, req->backend) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lbd_ctl_request req;
	size_t errlen, len, i;
	char *line, *err;
	int rc;

	if (size == 0)
		return 0;
	errlen = data[0];
	data++, size--;
	len = size < FUZZ_LINE_MAX ? size : FUZZ_LINE_MAX;
	if ((line = malloc(len + 1)) == NULL || (err = malloc(errlen ? errlen : 1)) == NULL)
		abort();
	memcpy(line, data, len);
	line[len] = '\0';
	memset(err, FUZZ_POISON, errlen ? errlen : 1);
	rc = ctl_parse(line, &req, err, errlen);
	assert(rc == 0 || rc == -1);
	if (rc == 0) {
		/* Success leaves err alone. */
		for (i = 0; i < errlen; i++)
			assert((unsigned char)err[i] == FUZZ_POISON);
		check_request(&req);
		check_canonical(&req);
	} else if (errlen > 0) {
		/* Failure gives a reason, NUL-terminated inside the buffer. */
		assert(memchr(err, '\0', errlen) != NULL);
		assert(errlen == 1 || err[0] != '\0');
	}
	free(err);
	free(line);
	return 0;
}
