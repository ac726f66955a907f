/* What the files of the _speedups extension share: one module, several passes.
 *
 * Every name here is hidden from other shared objects: only PyInit__speedups
 * is exported. */
#ifndef PROMETHEUS_STREAMS_SPEEDUPS_H
#define PROMETHEUS_STREAMS_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define INTERNAL __attribute__((visibility("hidden")))

#define FAMILY_TYPE_MASK 7
#define FAMILY_UNTYPED 1
#define FAMILY_COUNTER 2
#define FAMILY_GAUGE 3
#define FAMILY_SUMMARY 4
#define FAMILY_HISTOGRAM 5
#define FAMILY_HELP 8
#define MAX_LABELS 64
#define MAX_NUMBER 64
#define UNDECIDED (-1)

#define C_BLANK 1
#define C_NAME_START 2
#define C_NAME 4
#define C_LABEL_START 8
#define C_LABEL 16
INTERNAL extern unsigned char char_class[256];

#define is_blank(c) (char_class[(unsigned char)(c)] & C_BLANK)
#define name_start(c) (char_class[(unsigned char)(c)] & C_NAME_START)
#define name_char(c) (char_class[(unsigned char)(c)] & C_NAME)
#define label_start(c) (char_class[(unsigned char)(c)] & C_LABEL_START)
#define label_char(c) (char_class[(unsigned char)(c)] & C_LABEL)

/* The bytes a pass reads, or -1 with a TypeError for anything else. */
static inline int
bytes_arg(PyObject *arg, const char **body, Py_ssize_t *size)
{
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "expected bytes, not %.100s", Py_TYPE(arg)->tp_name);
        return -1;
    }
    *body = PyBytes_AS_STRING(arg);
    *size = PyBytes_GET_SIZE(arg);
    return 0;
}

static inline int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Families by name: an open-addressing table of spans of the body (which
 * outlives the call), so no name is copied. */
typedef struct {
    const char *name; /* NULL: free slot */
    Py_ssize_t len;
    long flags;
} Family;

typedef struct {
    Family *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t used;
    /* The last name looked up: a family's HELP, TYPE and samples come in a row. */
    const char *last_name;
    Py_ssize_t last_len;
    Family *last;
} Families;

/* One sample line s[0, n) (no leading blank, not a comment), read without
 * making objects: its series key is s[0, key_end). */
typedef struct {
    Py_ssize_t key_end;
    double value;
    int has_stamp;
    long long ms;
} Line;

/* _speedups_scan.c */
INTERNAL void init_char_class(void);
INTERNAL int valid_utf8(const unsigned char *s, Py_ssize_t n);
INTERNAL int ieq(const char *s, Py_ssize_t n, const char *word);
INTERNAL int check_float(const char *s, Py_ssize_t n);
INTERNAL int fast_double(const char *s, Py_ssize_t n, double *out);
INTERNAL int check_int64(const char *s, Py_ssize_t n);
INTERNAL size_t name_hash(const char *name, Py_ssize_t n);
INTERNAL Family *families_find(Families *t, const char *name, Py_ssize_t n);
INTERNAL int families_grow(Families *t);
INTERNAL Family *family_of(Families *t, const char *name, Py_ssize_t n);

/* _speedups_check.c */
INTERNAL PyObject *check_exposition(PyObject *module, PyObject *arg);

/* _speedups_parse.c */
INTERNAL Py_ssize_t skip_label_block(const char *s, Py_ssize_t i, Py_ssize_t n);
INTERNAL int parse_int64(const char *s, Py_ssize_t n, long long *out);
INTERNAL int scan_sample(const char *s, Py_ssize_t n, Line *line);
INTERNAL PyObject *parse_samples(PyObject *module, PyObject *arg);

/* _speedups_encode.c */
INTERNAL PyObject *encode_series(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
INTERNAL PyObject *encode_page(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
INTERNAL PyObject *encode_known_page(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* _speedups_rewrite.c */
INTERNAL PyObject *rewrite_known(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif
