/*
 * The configuration's raw text (see conflex.h).  libconfuse 3.3 reads a
 * long line in time quadratic in its length (a 4 MiB word or comment takes
 * seconds, a 10 MiB one a minute), keeps only the closing line of a
 * section, miscounts lines after a comment and accepts a section still open
 * at end of file: this pass, linear, comes first and covers all four.
 *
 * It also takes the titles of service and backend sections out of the text
 * (blanked, lines kept) and records them: libconfuse looks a new title up
 * among all the titles of its kind before it, so 10 000 backends in one
 * service cost it 50 million string compares (~300 ms); config.c checks
 * that names are unique itself, with a hash.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conflex.h"

struct scan {
	struct conflex *lx;
	int line;
	int depth;
	int open_line[8];
	char word[2][256];		/* the last two words, a quoted one unquoted */
	char *tok[2];			/* where each starts in the text, quotes included */
	char *tok_end[2];
	int bare[2];			/* not quoted: may be a keyword */
};

static int __attribute__((format(printf, 3, 4)))
lex_error(struct conflex *lx, int line, const char *fmt, ...)
{
	va_list ap;

	lx->err_line = line;
	va_start(ap, fmt);
	vsnprintf(lx->err, sizeof(lx->err), fmt, ap);
	va_end(ap);
	return -1;
}

/* Reads all of fp into lx->text, the buffer doubling: linear. */
static int
read_all(struct conflex *lx, FILE *fp)
{
	size_t len = 0, cap = 0, n;
	char *grown;

	for (;;) {
		if (cap - len < 2) {
			/* A configuration has no business being this large. */
			if (cap > CONFLEX_FILE_MAX)
				return lex_error(lx, 0, "file too large (over %u MiB)",
				    CONFLEX_FILE_MAX >> 20);
			cap = cap == 0 ? 65536 : 2 * cap;
			if ((grown = realloc(lx->text, cap)) == NULL)
				return lex_error(lx, 0, "out of memory");
			lx->text = grown;
		}
		if ((n = fread(lx->text + len, 1, cap - len - 1, fp)) == 0)
			break;
		len += n;
	}
	lx->text[len] = '\0';
	if (ferror(fp))
		return lex_error(lx, 0, "read: %s", strerror(errno));
	if (memchr(lx->text, '\0', len) != NULL)
		return lex_error(lx, 0, "not a text file");
	return 0;
}

int
conflex_read(struct conflex *lx, const char *path)
{
	FILE *fp;
	int rc;

	if ((fp = fopen(path, "re")) == NULL)
		return lex_error(lx, -1, "%s: %s", path, strerror(errno));
	rc = read_all(lx, fp);
	fclose(fp);
	return rc;
}

/* Every line at most CONFLEX_LINE_MAX bytes, found with memchr: linear. */
static int
check_lines(struct conflex *lx)
{
	const char *p = lx->text, *nl;
	int line = 1;

	for (;; line++, p = nl + 1) {
		nl = strchr(p, '\n');
		if ((size_t)((nl != NULL ? nl : p + strlen(p)) - p) > CONFLEX_LINE_MAX)
			return lex_error(lx, line, "line longer than %d bytes", CONFLEX_LINE_MAX);
		if (nl == NULL)
			return 0;
	}
}

static void
scan_word(struct scan *sc, const char *start, size_t len, char *tok, char *tok_end,
    int bare)
{
	sc->tok[0] = sc->tok[1];
	sc->tok_end[0] = sc->tok_end[1];
	sc->bare[0] = sc->bare[1];
	sc->tok[1] = tok;
	sc->tok_end[1] = tok_end;
	sc->bare[1] = bare;
	memmove(sc->word[0], sc->word[1], sizeof(sc->word[1]));
	if (len >= sizeof(sc->word[1]))
		len = sizeof(sc->word[1]) - 1;
	memcpy(sc->word[1], start, len);
	sc->word[1][len] = '\0';
}

/* Records a service or backend section (name "" when it has none); the
 * array doubles. */
static void
scan_record(struct scan *sc, int depth, int titled)
{
	struct conflex *lx = sc->lx;
	struct conflex_section *sl;
	void *grown;

	if (lx->nsections == lx->cap) {
		grown = reallocarray(lx->sections, lx->cap ? 2 * lx->cap : 16,
		    sizeof(*lx->sections));
		if (grown == NULL)
			return;
		lx->sections = grown;
		lx->cap = lx->cap ? 2 * lx->cap : 16;
	}
	sl = &lx->sections[lx->nsections++];
	sl->line = sc->line;
	sl->depth = depth;
	snprintf(sl->name, sizeof(sl->name), "%s", titled ? sc->word[1] : "");
}

/* Blanks the title's token, quotes and all; its newlines stay. */
static void
scan_blank_title(struct scan *sc)
{
	char *p;

	for (p = sc->tok[1]; p != NULL && p < sc->tok_end[1]; p++)
		if (*p != '\n')
			*p = ' ';
}

/* A "service NAME {" or "backend NAME {" (or one without a NAME) opens. */
static void
scan_open(struct scan *sc)
{
	static const char *const kinds[] = { "service", "backend" };
	int depth, titled, untitled;

	if (sc->depth < (int)(sizeof(sc->open_line) / sizeof(sc->open_line[0])))
		sc->open_line[sc->depth] = sc->line;
	depth = ++sc->depth;
	if (depth <= 2) {
		titled = sc->bare[0] && strcmp(sc->word[0], kinds[depth - 1]) == 0;
		untitled = sc->bare[1] && strcmp(sc->word[1], kinds[depth - 1]) == 0;
		if (titled || untitled)
			scan_record(sc, depth, titled);
		if (titled)
			scan_blank_title(sc);
	}
	sc->word[0][0] = sc->word[1][0] = '\0';
	sc->bare[0] = sc->bare[1] = 0;
}

/* Skips a quoted string, recording its content as the last word; NULL when
 * it is longer than a line may be (it may span lines). */
static char *
scan_quoted(struct scan *sc, char *p)
{
	char quote = *p++, *start = p;
	int line = sc->line;

	for (; *p != '\0' && *p != quote; p++) {
		if (*p == '\\' && p[1] != '\0')
			p++;
		if (*p == '\n')
			sc->line++;
	}
	if (p - start > CONFLEX_LINE_MAX) {
		lex_error(sc->lx, line, "quoted string longer than %d bytes", CONFLEX_LINE_MAX);
		return NULL;
	}
	scan_word(sc, start, (size_t)(p - start), start - 1, *p == quote ? p + 1 : p, 0);
	return *p == quote ? p + 1 : p;
}

/*
 * Comments become blanks, newlines kept: libconfuse 3.3 miscounts lines
 * after a comment (two per '#' line) and refuses one inside a list.
 */
static char *
scan_comment(struct scan *sc, char *p)
{
	if (p[0] == '/' && p[1] == '*') {
		p[0] = p[1] = ' ';
		for (p += 2; *p != '\0' && !(p[0] == '*' && p[1] == '/'); p++) {
			if (*p == '\n')
				sc->line++;
			else
				*p = ' ';
		}
		if (*p != '\0')
			p[0] = p[1] = ' ';
		return *p != '\0' ? p + 2 : p;
	}
	for (; *p != '\0' && *p != '\n'; p++)
		*p = ' ';
	return p;
}

/* A bare word runs to the next blank or punctuation libconfuse knows. */
static char *
scan_bare(struct scan *sc, char *p)
{
	char *start = p;

	while (*p != '\0' && !isspace((unsigned char)*p) && strchr("{}=,\"'#", *p) == NULL)
		p++;
	if (p == start)
		return p + 1;
	scan_word(sc, start, (size_t)(p - start), start, p, 1);
	return p;
}

int
conflex_scan(struct conflex *lx)
{
	struct scan sc = { .lx = lx, .line = 1 };
	char *p = lx->text;

	if (check_lines(lx) == -1)
		return -1;
	while (p != NULL && *p != '\0') {
		if (*p == '\n') {
			sc.line++;
			p++;
		} else if (*p == '#' || (p[0] == '/' && (p[1] == '/' || p[1] == '*'))) {
			p = scan_comment(&sc, p);
		} else if (*p == '"' || *p == '\'') {
			p = scan_quoted(&sc, p);
		} else if (*p == '{') {
			scan_open(&sc);
			p++;
		} else if (*p == '}') {
			if (sc.depth > 0)
				sc.depth--;
			p++;
		} else if (isspace((unsigned char)*p) || *p == '=' || *p == ',') {
			if (*p == '=')
				scan_word(&sc, "=", 1, NULL, NULL, 0);
			p++;
		} else
			p = scan_bare(&sc, p);
	}
	if (p == NULL)
		return -1;
	if (sc.depth > 0)
		return lex_error(lx, sc.open_line[0],
		    "section opened here is not closed at end of file (missing '}')");
	return 0;
}

void
conflex_free(struct conflex *lx)
{
	free(lx->text);
	free(lx->sections);
	lx->text = NULL;
	lx->sections = NULL;
	lx->nsections = lx->cap = 0;
}
