"""twistd plugin: ``twistd -n abook -c FILE``. All logic lives in abook.tap."""

from twisted.application.service import ServiceMaker

abook = ServiceMaker("abook", "abook.tap", "CRM address books, mail tracking and Exchange sync", "abook")
