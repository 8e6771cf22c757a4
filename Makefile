# The course's two everyday commands are `make book` and `make test`.
# Both create .venv and install what is needed when it is missing.

PYTHON ?= python3
# Debian's packages for make pdf (.ci/run installs them when xelatex is missing).
TEXLIVE := texlive-xetex texlive-latex-extra texlive-fonts-recommended latexmk fonts-freefont-otf \
	fonts-dejavu-core poppler-utils
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard chapters/*.ipynb))
# make notebooks NB=chapters/01-initial-value-problems.ipynb re-executes one notebook.
NB ?= $(NOTEBOOKS)
JOBS ?= 2

# nbval on every notebook; test-portable runs it again with the kernels of other CPUs.
NBVAL = $(BIN)/python -m pytest -x -n $(JOBS) --dist loadfile --nbval --nbval-current-env \
	--nbval-sanitize-with tests/nbval_sanitize.cfg chapters
# The package tests and the docstring examples.
PYTEST_PACKAGE = $(BIN)/python -m pytest -x -n $(JOBS) tests --doctest-modules src/odecourse
# test-portable leaves out the two files that execute the student edition and the nbgrader
# course (two thirds of the suite's time): those notebooks are the chapters with their
# solutions taken out, and test-portable checks the chapters themselves with nbval.
PORTABLE_PACKAGE = $(PYTEST_PACKAGE) --ignore=tests/test_assignments.py \
	--ignore=tests/test_nbgrader_course.py
# A processor without AVX-512 or AVX2: PyTorch's scalar kernels, MKL's compatible code path,
# OpenBLAS's Sandy Bridge kernels (no fused multiply-add; NumPy's and SciPy's BLAS and LAPACK),
# one thread, and NumPy at its baseline (X86_V3/X86_V4 are NumPy 2's names, the AVX512_*
# names older NumPy's; names a NumPy does not know are ignored).
SCALAR_CPU = ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE OPENBLAS_CORETYPE=Sandybridge \
	OMP_NUM_THREADS=1 \
	NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512F AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"
# An AVX2 processor without AVX-512 (an older Intel or AMD CPU; OpenBLAS's Haswell kernels),
# with two threads.
AVX2_CPU = ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=2 \
	NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512F AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"

.PHONY: help venv book pdf pdf-packages test test-portable test-site test-pdf lint format notebooks nbval benchmarks assignments clean

help:
	@echo "make book       build the HTML book (executes every notebook) into _build/html"
	@echo "make test       ruff, the student edition, package tests, notebook checks and nbval"
	@echo "make test-portable package tests and nbval under the floating-point kernels of other CPUs"
	@echo "make test-site  check the built book in headless Chromium (after make book)"
	@echo "make pdf        build the PDF edition with XeLaTeX into _build/latex and check it"
	@echo "make test-pdf   check the PDF edition again (page count, chapter titles, LaTeX log)"
	@echo "make assignments write the student edition of every chapter to _build/assignments"
	@echo "make student-zip the student edition as one zip, for the book's download link"
	@echo "make nbgrader-course write an nbgrader course directory (COURSE=dir, default _build/nbgrader-course)"
	@echo "make notebooks  re-execute notebooks in place (NB=path for one)"
	@echo "make benchmarks run the benchmark scripts and print their tables"
	@echo "make format     ruff format and ruff check --fix"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

book: $(STAMP) student-zip
	rm -rf _build/html _build/jupyter_execute _build/.doctrees
	$(BIN)/jupyter-book build . --builder html -W --keep-going
	@if [ -f _build/latex/$(PDF) ]; then cp _build/latex/$(PDF) _build/html/; fi
	@echo "Book: $(CURDIR)/_build/html/index.html"

# The PDF edition: Jupyter Book's LaTeX builder and XeLaTeX (latexmk), with the outputs
# stored in the notebooks and without the exercises' solutions (see _ext/pdf_config.py).
# Needs the Debian packages in TEXLIVE (make pdf-packages prints them).  The PDF is copied
# into _build/html (now, or by a later make book): the front page links to it.
PDF := odecourse.pdf
pdf: $(STAMP) student-zip
	@command -v xelatex >/dev/null && command -v latexmk >/dev/null && command -v pdftotext >/dev/null \
		&& fc-list "DejaVu Sans Mono" | grep -q . && fc-list FreeSerif | grep -q . \
		|| { echo "make pdf needs XeLaTeX, latexmk, poppler and two fonts; on Debian or Ubuntu:"; \
		     echo "  apt-get install --no-install-recommends $(TEXLIVE)"; exit 1; }
	rm -rf _build/latex _build/.doctrees
	$(BIN)/python _ext/pdf_config.py _build/pdf/_config.yml
	$(BIN)/jupyter-book build . --builder latex --config _build/pdf/_config.yml -W --keep-going
	$(MAKE) -C _build/latex LATEXMKOPTS="-xelatex -silent -halt-on-error" all-pdf
	$(BIN)/python tests/check_pdf.py
	@if [ -d _build/html ]; then cp _build/latex/$(PDF) _build/html/; fi
	@echo "PDF: $(CURDIR)/_build/latex/$(PDF)"

test-pdf: $(STAMP)
	$(BIN)/python tests/check_pdf.py

# The Debian packages make pdf needs (.ci/run installs them when they are missing).
pdf-packages:
	@echo $(TEXLIVE)

# The built site in a real browser: math rendered with no network, no JavaScript errors,
# every image and internal link present; screenshots go to _build/screenshots/.
test-site: $(STAMP)
	$(BIN)/python tests/check_site.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# One thread per pytest worker (and per notebook kernel): $(JOBS) workers that each start a
# thread pool per core oversubscribe the cores, and idle OpenMP threads spin (a training test
# took 31 s in the suite instead of 2 s alone).  test-portable's AVX2 run uses two threads.
ONE_THREAD = OMP_NUM_THREADS=1

test: lint assignments $(STAMP)
	env $(ONE_THREAD) $(PYTEST_PACKAGE)
	env $(ONE_THREAD) $(NBVAL)

nbval: $(STAMP)
	env $(ONE_THREAD) $(NBVAL)

# Stored outputs and tested claims must hold on any CPU, not only on the one that wrote them.
test-portable: $(STAMP)
	@echo "== scalar kernels and one thread (no AVX2, no AVX-512): package tests, then nbval"
	env $(SCALAR_CPU) $(PORTABLE_PACKAGE)
	env $(SCALAR_CPU) $(NBVAL)
	@echo "== AVX2 kernels and two threads (no AVX-512): package tests, then nbval"
	env $(AVX2_CPU) $(PORTABLE_PACKAGE)
	env $(AVX2_CPU) $(NBVAL)

notebooks: $(STAMP)
	$(BIN)/jupyter-execute --inplace --timeout=600 $(NB)

# The student edition: solutions stubbed, written solutions removed, outputs cleared.
# tests/test_assignments.py executes it and checks that every exercise check fails with a hint.
assignments: $(STAMP)
	$(BIN)/python -m odecourse.assignments --out _build/assignments $(NOTEBOOKS)

# The student edition as one zip; the preface and the appendix link to it, so make book
# builds it first (Sphinx copies it into _build/html/_downloads).
STUDENT_ZIP := _build/downloads/odecourse-student-edition.zip
.PHONY: student-zip nbgrader-course
student-zip: $(STAMP)
	$(BIN)/python -m odecourse.assignments --out _build/assignments --zip $(STUDENT_ZIP) $(NOTEBOOKS)

# An nbgrader course directory, one assignment per chapter (appendix, "Grading with
# nbgrader"); tests/test_nbgrader_course.py runs nbgrader on it.  make clean deletes
# _build: for a real course give another folder, make nbgrader-course COURSE=~/grading.
COURSE ?= _build/nbgrader-course
nbgrader-course: $(STAMP)
	$(BIN)/python -m odecourse.assignments nbgrader-course $(COURSE) $(NOTEBOOKS)

benchmarks: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps -r benchmarks/requirements.txt
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf _build
