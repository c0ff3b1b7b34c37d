/* Temporary directories for unit tests that write files (sinks, spool). */
#ifndef TEST_SUPPORT_FILES_H
#define TEST_SUPPORT_FILES_H

/** mkdtemp under /tmp with the given tag; malloc'd path. */
char *test_tmpdir(const char *tag);
/** rm -r of the directory, then free the path. */
void test_rm_rf(char *dir);

#endif
