"""The course's exercises: one module per notebook (``ex01`` ... ``ex09``), each exercise with
``check(answer)``, ``hint()`` and ``solution()``, built on the machinery in :mod:`.core` (the
verdict type, calling a learner's function safely, reading a number or a list from any answer).

A notebook imports its own: ``from bert_workbook.exercises import ex05``.
"""
